"""The TVConv benchmark, ``python -m benchmarks.tvconv`` (:mod:`.command`), and its studies.

=====================  ==================================================================
module                 what it owns
=====================  ==================================================================
``command``            the command line (``--study faces|drive|efficiency|all``)
``faces``              ORL face identification/verification, depthwise vs TVConv per width
``drive``              DRIVE vessel segmentation with a DeepLabV3+-style network
``efficiency``         per-layer timing, network throughput, peak memory, MACs/parameters
``segmentation_net``   the DeepLabV3+-style network whose ASPP uses inverted residual blocks
=====================  ==================================================================

Each study module exposes ``NAME``, ``SCHEDULES`` (``quick``/``default``/``full``
-> a frozen schedule dataclass) and ``run(args, env, out_dir) -> dict``; the mean
and spread over seeds come from :mod:`benchmarks.common.summary`.
"""
