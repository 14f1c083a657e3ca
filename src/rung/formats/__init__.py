"""Model file formats read without the library that runs the model: the facts the catalog shows
and the checks a backend makes before it loads anything."""
