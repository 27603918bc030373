"""Online evaluation: evaluators scoring new production generations (`runner`), chosen by consistent
sampling (`sampling`), each generation read as a scorer's case (`cases`)."""
