"""The run folder, the one thing every stage hands to the next: its file names, the typed record behind each
JSON file (with its schema version, read and written here only), reading a checkpoint back, and the one join
of verify's verdicts with bench's speeds.

It sits below every stage (train, runtimes, export, verify, bench, predict, report) and above core, models and
data; a stage names a run file only through the constants in `run.folder`.
"""
