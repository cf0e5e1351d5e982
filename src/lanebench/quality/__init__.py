"""Quality per lane: what a lane costs in output quality against a reference lane.

The figures come from the build's own ``llama-perplexity`` (``--kl-divergence-base`` for the
reference, ``--kl-divergence`` for each lane): ``parse`` reads its output, ``slicing`` sizes
the scored slice against free disk and memory, ``runner`` runs it with a base file that is
written whole or not at all, ``greedy`` checks that speculative lanes are lossless, and
``select`` picks the reference and groups lanes that share one measurement.
"""
