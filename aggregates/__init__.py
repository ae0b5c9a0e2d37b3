"""Event-sourced aggregates: Program, Dataset, Corpus, Execution, Optimization, Evaluation.

Domain only: no Kafka, HTTP or SQL, and nothing imported here (importing an aggregate
module must not load the application service). Each aggregate guards, then records one
event. The application service that applies commands to them is `aggregates.app`;
`legacy_topics` keeps events stored by earlier layouts loadable. See README.md here.
"""
