"""Taking in what a candidate handed in, and grading it: unpacked (`intake`), checked for a
changed grader (`checkout`) and for what it needs (`dependencies`), graded in a child pytest run
(`grader`)."""
