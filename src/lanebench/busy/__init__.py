"""A busy machine, noticed: the CPU time (and GPU use) of every process outside the lane's own
process groups and lanebench, per measured window; which windows were busy; which figures had
to be computed from busy windows. ``records`` (dataclasses), ``cpu`` and ``gpu`` (pure parsing
and arithmetic), ``meter`` (reads /proc and nvidia-smi), ``verdict`` (a lane's figures)."""
