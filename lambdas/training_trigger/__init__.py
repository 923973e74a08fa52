"""The training trigger: an uploaded bundle version becomes a training run or a rejection."""
