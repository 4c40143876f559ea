"""Terms: their add and drop deadlines, their registration windows ("time tickets"), and each
student's class level, which picks their window."""
