"""The Lava target. Lava 0.10 runs on Python 3.10 with numpy < 2, in its own venv (``.venv-lava``);
the host process drives it through a subprocess (:mod:`.driver`), and :mod:`.runner` is what runs there."""
