"""`toolkit eval`: a model scored against its dataset in a small classifier's features (models,
classifier, metrics), and text-to-image models scored on prompt files (prompts).
"""
