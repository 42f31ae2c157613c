"""The console's pages, one module per page group. Each module has a module-level `router`;
bootstrap.py includes every router listed in ROUTERS. Another page group (warehouse, finance,
audit, admin, analytics) is one more module here, its entry in vocabulary.NAVIGATION and
vocabulary.BUILT, and its templates under templates/<group>/."""
