"""The models and their facts: architecture rows (``adapters``), image-to-video input rows (``image``), pipeline
facts (``pipeline``), the model folder's typed ``moft.json`` (``record``), latents and conditioning (``latents``),
devices and dtypes (``device``), loading by name (``loading``), the tiny builders (``tiny``) and the shipped
organisms (``shipped/``, pipeline folders)."""
