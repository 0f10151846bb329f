"""engine.data: datasets, the DataLoader, transforms, and datasets by name found offline.
Engine layer (data), above autograd.
"""

from .catalog import load_dataset
from .dataset import ArrayDataset, Dataset, NDArrayDataset
from .loader import DataLoader
from .mnist import IDXError, MNISTDataset
from .transforms import RandomCrop, RandomFlipHorizontal, Transform

__all__ = ["ArrayDataset", "DataLoader", "Dataset", "IDXError", "MNISTDataset", "NDArrayDataset",
           "RandomCrop", "RandomFlipHorizontal", "Transform", "load_dataset"]
