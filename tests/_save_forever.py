"""Child process for test_checkpoint_kill: saves ever-newer versions of one model to the
same path until it is killed. Version v has every weight equal to v. It prints "saving"
as each save begins, so that the parent can aim its kill inside one."""

import sys

import numpy as np

from dlcore import layers, models

path = sys.argv[1]
model = models.Sequential([layers.Dense(1024, input_shape=(1024,)), layers.Dense(512)])
model.compile(optimizer="adam", loss="mse")
version = int(sys.argv[2])
print("ready", flush=True)
while True:
    version += 1
    model.set_weights([np.full(w.shape, version, np.float32) for w in model.weights])
    print("saving", flush=True)
    model.save(path)
