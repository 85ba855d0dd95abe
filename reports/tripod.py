"""The TRIPOD+AI checklist: its 27 items with their sub-items, numbered exactly as published.

Source: Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting clinical
prediction models that use regression or machine learning methods. BMJ 2024;385:e078378
(doi:10.1136/bmj-2023-078378), Table 1 (the checklist, version of 11 January 2024; 27 items, 52 with
sub-items; item numbers, sections and the D/E column checked against it). The topics below are short
names of each item in this project's words, not the checklist's full wording; ``applies`` is the checklist's
column: ``D`` development, ``E`` evaluation, ``D;E`` both. The model report fills each item the software can and
marks the rest "to be completed by the authors" or "N/A (development only)" (an evaluation-only item of a
development study).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChecklistItem:
    item: str  # "1", "3a", ...
    section: str
    topic: str
    applies: str  # "D", "E" or "D;E"


CHECKLIST: tuple[ChecklistItem, ...] = tuple(
    ChecklistItem(*row)
    for row in (
        ("1", "Title", "Title", "D;E"),
        ("2", "Abstract", "Abstract", "D;E"),
        ("3a", "Introduction", "Background: healthcare context and rationale", "D;E"),
        ("3b", "Introduction", "Background: target population, care pathway and intended users", "D;E"),
        ("3c", "Introduction", "Background: known health inequalities between groups", "D;E"),
        ("4", "Introduction", "Objectives", "D;E"),
        ("5a", "Methods", "Data: sources of data", "D;E"),
        ("5b", "Methods", "Data: dates of accrual and follow-up", "D;E"),
        ("6a", "Methods", "Participants: study setting and centres", "D;E"),
        ("6b", "Methods", "Participants: eligibility criteria", "D;E"),
        ("6c", "Methods", "Participants: treatments received", "D;E"),
        ("7", "Methods", "Data preparation", "D;E"),
        ("8a", "Methods", "Outcome: definition, how and when assessed", "D;E"),
        ("8b", "Methods", "Outcome: assessor qualifications when assessment is subjective", "D;E"),
        ("8c", "Methods", "Outcome: blinding of outcome assessment", "D;E"),
        ("9a", "Methods", "Predictors: choice of initial predictors and any pre-selection", "D"),
        ("9b", "Methods", "Predictors: definitions, how and when measured", "D;E"),
        ("9c", "Methods", "Predictors: assessor qualifications when assessment is subjective", "D;E"),
        ("10", "Methods", "Sample size", "D;E"),
        ("11", "Methods", "Missing data", "D;E"),
        ("12a", "Methods", "Analysis: how the data were used (development, evaluation, resampling)", "D"),
        ("12b", "Methods", "Analysis: handling of predictors (functional form, transformations)", "D"),
        ("12c", "Methods", "Analysis: model type, building, hyper-parameter tuning and internal validation", "D"),
        ("12d", "Methods", "Analysis: heterogeneity across clusters (e.g. centres)", "D;E"),
        ("12e", "Methods", "Analysis: performance measures and model comparison", "D;E"),
        ("12f", "Methods", "Analysis: model updating arising from the evaluation", "E"),
        ("12g", "Methods", "Analysis: how predictions were calculated in the evaluation", "E"),
        ("13", "Methods", "Class imbalance", "D;E"),
        ("14", "Methods", "Fairness", "D;E"),
        ("15", "Methods", "Model output and any thresholds", "D"),
        (
            "16",
            "Methods",
            "Training versus evaluation: differences in setting, eligibility, outcome, predictors",
            "D;E",
        ),
        ("17", "Methods", "Ethical approval", "D;E"),
        ("18a", "Open science", "Funding", "D;E"),
        ("18b", "Open science", "Conflicts of interest", "D;E"),
        ("18c", "Open science", "Protocol", "D;E"),
        ("18d", "Open science", "Registration", "D;E"),
        ("18e", "Open science", "Data sharing", "D;E"),
        ("18f", "Open science", "Code sharing", "D;E"),
        ("19", "Patient and public involvement", "Patient and public involvement", "D;E"),
        ("20a", "Results", "Participants: flow, with numbers with and without the outcome", "D;E"),
        ("20b", "Results", "Participants: characteristics overall and by data source, incl. missing data", "D;E"),
        ("20c", "Results", "Participants: comparison of predictor distributions with the development data", "E"),
        ("21", "Results", "Model development: participants and outcome events in each analysis", "D;E"),
        ("22", "Results", "Model specification: full details to make predictions", "D"),
        ("23a", "Results", "Model performance with confidence intervals", "D;E"),
        ("23b", "Results", "Model performance: heterogeneity across clusters", "D;E"),
        ("24", "Results", "Model updating: results of any updating", "E"),
        ("25", "Discussion", "Interpretation", "D;E"),
        ("26", "Discussion", "Limitations", "D;E"),
        ("27a", "Discussion", "Usability: handling of poor-quality or unavailable input data", "D"),
        ("27b", "Discussion", "Usability: user interaction and expertise needed", "D"),
        ("27c", "Discussion", "Usability: next steps for future research", "D;E"),
    )
)
#: The checklist's top-level item numbers (1–27).
ITEM_NUMBERS: tuple[int, ...] = tuple(range(1, 28))
NOT_APPLICABLE = "N/A (development only)"
TO_COMPLETE = "To be completed by the authors"
