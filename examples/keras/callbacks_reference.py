"""Keras 3's EarlyStopping and ReduceLROnPlateau on scripted sequences of a monitored value, for
kiln's callback tests: the epoch each stops at, and the learning rate after each epoch.

    python examples/keras/callbacks_reference.py > tests/fixtures/keras/callbacks.txt
"""

import keras

SEQ = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.71, 0.72, 0.69, 0.7, 0.75, 0.8]


def model():
    m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return m


def early(**kw):
    m = model()
    cb = keras.callbacks.EarlyStopping(monitor="val_loss", **kw)
    cb.set_model(m)
    cb.on_train_begin()
    for e, v in enumerate(SEQ):
        cb.on_epoch_end(e, {"val_loss": v})
        if m.stop_training:
            return e
    return -1


def plateau(**kw):
    m = model()
    cb = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", **kw)
    cb.set_model(m)
    cb.on_train_begin()
    lrs = []
    for e, v in enumerate(SEQ):
        cb.on_epoch_end(e, {"val_loss": v})
        lrs.append(float(m.optimizer.learning_rate))
    return lrs


print(f"# keras {keras.__version__}; sequence {SEQ}")
print("early patience=2", early(patience=2))
print("early patience=3 min_delta=0.05", early(patience=3, min_delta=0.05))
print("early patience=1 baseline=0.75", early(patience=1, baseline=0.75))
print("early patience=2 start_from_epoch=4", early(patience=2, start_from_epoch=4))
print("plateau factor=0.5 patience=2", " ".join(f"{v!r}" for v in plateau(factor=0.5, patience=2)))
print("plateau factor=0.5 patience=1 cooldown=2 min_lr=0.02", " ".join(f"{v!r}" for v in plateau(factor=0.5, patience=1, cooldown=2, min_lr=0.02)))
