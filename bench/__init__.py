"""Benchmarks (`marginbot bench reports|push`): a generated 10-year database and the timing runs that
print their figures. Not part of the running product; no test asserts a timing."""
