"""The admin dashboard at ``/dashboard``: a login form, a cookie-held JWT, pages with charts."""
