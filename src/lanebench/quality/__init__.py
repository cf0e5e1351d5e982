"""Quality per lane: what a lane costs in output quality against a reference lane.

The figures come from the build's own ``llama-perplexity`` (``--kl-divergence-base`` for the
reference, ``--kl-divergence`` for each lane): ``parse`` reads its output, ``slicing`` sizes
the scored slice against free disk and memory, ``runner`` runs it with a base file that is
written whole or not at all, ``flags`` reads a build's options from its ``--help``,
``reproduce`` decides what the tool is given of each lane and refuses pairings whose KLD would
mean nothing, ``greedy`` gives speculative lanes a verdict (lossless or where they diverge)
instead of a figure, and ``select`` picks the reference.
"""
