"""Names that Ray programs reach under ``ray._common`` and ember honours (``utils``)."""
