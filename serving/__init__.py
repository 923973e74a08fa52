"""The model proxy: online features from Redis + ONNX Runtime inference behind FastAPI.

One app (`serving.app.create_app`) runs under uvicorn (EKS, local), under Mangum on Lambda
(`serving.lambda_handler.handler`) and in the tests. It imports neither Feast nor pandas: feature
reads follow a plan computed from the Feast registry ahead of time (`serving.spec`).
"""
