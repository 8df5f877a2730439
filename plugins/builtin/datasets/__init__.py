"""Dataset plugins: the procedural shapes, scikit-learn's digits, and a folder of images.
"""
