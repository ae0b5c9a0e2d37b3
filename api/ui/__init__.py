"""The web console under /ui: server-rendered, read-only pages over the read API's queries.

Jinja2 templates, one stylesheet and one script of ours, and uPlot kept as files under
`static/vendor` (nothing is built at run time or fetched from the internet). Pages read
through `api.views` like the JSON routes do; charts are aggregated in SQL.
"""
