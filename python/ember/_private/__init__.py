"""Names that Ray programs reach under ``ray._private`` and ember honours (``worker``)."""
