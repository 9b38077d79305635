"""Check-ins with victim and survivor associations: scheduled, reminded, escalated to staff.

An association's contact persons answer a short questionnaire (a template in
``config/checkins/``) on a schedule in the association's own time zone. The scheduler only
wakes the feature; due cycles, reminders, missed cycles and escalations are found and claimed
in the database, so a doubled or missed trigger, a restart or a second worker change nothing.
"""
