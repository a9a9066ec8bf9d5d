"""Targets: which file runs in which runtime on which device, and what it must reproduce.

formats.py and runtimes.py are the registries (one line per format, one per runtime); gates.py holds what
each precision promises; plan.py decides what runs and what is skipped and why; child.py runs a runtime in
a process of its own. export, verify, bench and predict take all of this from here.

Nothing is imported here: the registries load without torch, so the command line's help texts, which are
built from them, stay quick.
"""
