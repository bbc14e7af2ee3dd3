"""The durable decision log (``log.py``): every decision appended off the request path,
labels committed before they are acknowledged; its table and the store a URL opens
(``table.py``; SQLite ``sqlite.py`` or PostgreSQL ``postgres.py`` behind ``store.py``), and
the records it hands the rest of the server (``records.py``)."""
