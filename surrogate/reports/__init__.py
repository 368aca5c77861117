"""Reports as data (sections), rendered once to HTML and once to Markdown, for fits and training runs."""
