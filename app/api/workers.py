from flask import Blueprint

bp = Blueprint("workers", __name__)
