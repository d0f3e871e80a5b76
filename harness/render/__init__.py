"""Results for people: the rich console table, progress and panels, markdown, HTML and SVG plots."""
