"""`toolkit train`: the training config (config), the Accelerate trainer (trainer), data loading
(data) and checkpoints (checkpoints).
"""
