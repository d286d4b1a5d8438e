"""Scale-out on Ray: sharded, resumable embedding and prediction (Ray Data actor pools) and data-parallel
fine-tuning (Ray Train's TorchTrainer over torch DDP).

Nothing here imports Ray at import time: :mod:`transferkit.distributed.cluster` imports it when a command is
given ``--workers``, with a one-line error naming the ``distributed`` extra when it is missing.
"""
