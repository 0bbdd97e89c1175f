"""The ladder between the linear theory and ResNet-18 (issue 21): rungs as options of the engine
(`deep.ladder.rungs`), a resumable sweep over weight decay × α_p × EMA × seeds (`deep.ladder.runner`)
and `ssldyn ladder` (`deep.ladder.cli`)."""
