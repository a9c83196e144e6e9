"""pip / venv installation of sphmask (the ROS build uses CMakeLists.txt instead)."""

from setuptools import find_packages, setup

setup(
    name="sphmask",
    version="0.1.0",
    description="Spherical Mask 3D instance segmentation for point clouds, with a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sphmask_core*", "sphmask_ros*", "training*"]),
    package_data={
        "sphmask_core": ["configs/*.yaml", "pretrained/*.pt", "pretrained/*.yaml", "pretrained/*.md"],
        "training": ["configs/*.yaml"],
    },
    install_requires=["torch", "numpy", "scipy", "tqdm", "pyyaml", "matplotlib", "pillow", "plyfile"],
    entry_points={
        "console_scripts": [
            "sphmask-train = training.train:main",
            "sphmask-predict = training.predict:main",
            "sphmask-eval = sphmask_core.evaluation.cli:main",
            "sphmask-convert = sphmask_core.official_checkpoint:main",
            "sphmask-node = sphmask_ros.node:main",
            "sphmask-lifecycle-node = sphmask_ros.lifecycle_node:main",
            "sphmask-bag = sphmask_ros.bag.cli:main",
            "sphmask-demo = sphmask_ros.demo:main",
        ]
    },
)
