-- Who saw which experiment variant, and how often.
CREATE TABLE experiment_exposures (
    experiment  TEXT NOT NULL,
    variant     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    turns       INTEGER NOT NULL,
    PRIMARY KEY (experiment, user_id)
);
