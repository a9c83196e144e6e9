"""Spherical Mask 3D instance segmentation: the method, with no ROS dependency."""

__version__ = "0.1.0"
