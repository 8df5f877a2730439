"""Not code: the weights we ship. models/ holds the model folders `--model NAME` finds,
eval_classifiers/ the classifiers `toolkit eval` scores with; each folder's __init__ registers them.
"""
