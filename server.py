"""The server process: the dashboard (app.py) plus Stripe's webhook route, in one st.App.

`streamlit run server.py` detects the App below and serves both.
"""

from __future__ import annotations

from streamlit.starlette import App

from lib.webhooks import routes

app = App("app.py", routes=routes())
