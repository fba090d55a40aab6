"""`tfvae train ARGS...` in one process with two logical CPU devices, so that
`--set training.distribute=mirrored` trains two replicas: the one-process reference of
tests/test_multi_worker.py (logical devices must be configured before TensorFlow starts).

    python tests/mirrored_train.py CONFIG --set training.distribute=mirrored ...
"""
import sys

import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfvae.app import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main(["train"] + sys.argv[1:]))
