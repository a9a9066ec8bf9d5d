"""The bottom layer: errors, atomic files, devices, machine facts and run folders. Imports nothing above it."""
