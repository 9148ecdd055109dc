"""The models and their facts: architecture rows (``adapters``), pipeline facts (``pipeline``), latents and
conditioning (``latents``), loading by name (``loading``), the tiny builders (``tiny``) and the shipped organisms
(``shipped/``, pipeline folders)."""
