"""Reading users' labeled data with clear, one-line errors."""

from transferkit.data.io import LabeledData, infer_task, load_inputs, load_labeled, read_table
from transferkit.data.split import train_test_indices

__all__ = ["LabeledData", "infer_task", "load_inputs", "load_labeled", "read_table", "train_test_indices"]
