"""Evaluation gate of the training workflow: may a trained model become a version?"""
