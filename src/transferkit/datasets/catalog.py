"""The built-in data sets: file, columns and a description of each (``NOTICE`` says where they come from)."""

BUILTIN_DATASETS: dict[str, dict[str, str]] = {
    "spam-assassin": {
        "file": "spam_assassin.csv.gz",
        "text_col": "text",
        "label_col": "label",
        "description": "SpamAssassin public corpus: 5,886 e-mails, spam vs ham (binary classification)",
    },
    "afinn": {
        "file": "afinn.csv",
        "text_col": "text",
        "label_col": "sentiment",
        "description": "AFINN-111: 2,476 English words, positive vs negative (binary); 'valence' column for regression",
    },
    "sotu-party": {
        "file": "sotu_party.csv.gz",
        "text_col": "text",
        "label_col": "label",
        "description": "State of the Union passages since 1861: 3,000, Democratic vs Republican President (binary)",
    },
    "first-names": {
        "file": "first_names.csv",
        "text_col": "text",
        "label_col": "label",
        "description": "English first names: 8,003, female vs male (binary; names on both lists dropped)",
    },
    "fortune-topics": {
        "file": "fortune_topics.csv.gz",
        "text_col": "text",
        "label_col": "label",
        "description": "BSD fortune database: 1,040 quotations and jokes in 8 topics, 130 each (multi-class)",
    },
    "sotu-president": {
        "file": "sotu_president.csv.gz",
        "text_col": "text",
        "label_col": "label",
        "description": "State of the Union passages of 8 Presidents (Grant to Obama): 1,200, 150 each (multi-class)",
    },
}
