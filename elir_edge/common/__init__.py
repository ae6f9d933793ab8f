"""Helpers every stage shares and none owns: atomic files, progress lines, tables, image I/O, the
task degradations and the image metrics. Imports nothing else of elir_edge but `errors`."""
