"""Datasets, the synthetic generator, the tf.data pipeline and THE preprocessing.

Importing this package pulls in neither TensorFlow nor OpenCV; the modules that need them
import them when called.
"""
