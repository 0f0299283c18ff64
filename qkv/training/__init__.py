"""Training: tasks, label-smoothed loss, learning-rate schedules, checkpoints and the loop."""
