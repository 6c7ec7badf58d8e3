"""Training: the trainer's loop (trainer), a run from request to record (run), the
learning-rate schedule, deferred signals, several processes (distributed), progress, and
Fig. 7's layer responses."""
