"""The stacks of one stage: storage (stateful), serving (predict API), monitoring (closed loop and alarms)."""
