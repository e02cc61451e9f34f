"""One construct per concern: storage, layer, function, live alias, API, events, alarms, dashboard."""
