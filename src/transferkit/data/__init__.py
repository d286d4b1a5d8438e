"""Reading users' labeled data with clear, one-line errors."""

from transferkit.data.io import LabeledData, infer_task, load_inputs, load_labeled, load_texts, read_table
from transferkit.data.split import train_test_indices

# load_texts is the former name of load_inputs, exported while callers move.
__all__ = ["LabeledData", "infer_task", "load_inputs", "load_labeled", "load_texts", "read_table", "train_test_indices"]
