"""Admin routes: recurring jobs (docs/contract.md §9)."""
from flask import Blueprint, jsonify

from ...domain import schedules
from ...store.backend import backend, check_job_id
from ..auth import ADMIN, requires
from ..openapi import describe
from ..schemas import current as schemas
from ..validation import json_body

bp = Blueprint("schedules", __name__, url_prefix="/api/v1/schedules")


def _sid(schedule_id):
    # same shape as a job id: checked before it reaches a key name
    return check_job_id(schedule_id)


@bp.post("")
@requires(ADMIN)
@describe("Create a schedule: a job from `job` at every slot of `cron` in `timezone`",
          body="SCHEDULE_CREATE", ok="SCHEDULE", status=201, tag="schedules",
          errors=(400, 401, 403, 413))
def create():
    return jsonify(schedules.create(backend(), json_body(schemas().SCHEDULE_CREATE))), 201


@bp.get("")
@requires(ADMIN)
@describe("Every schedule, with its next run and last job", ok="SCHEDULE_LIST",
          tag="schedules", errors=(401, 403))
def list_schedules():
    return jsonify(schedules=schedules.list_all(backend()))


@bp.get("/<schedule_id>")
@requires(ADMIN)
@describe("One schedule", ok="SCHEDULE", tag="schedules")
def get(schedule_id):
    return jsonify(schedules.get(backend(), _sid(schedule_id)))


@bp.delete("/<schedule_id>")
@requires(ADMIN)
@describe("Delete a schedule (its jobs stay)", ok="DELETED", tag="schedules")
def delete(schedule_id):
    return jsonify(schedules.delete(backend(), _sid(schedule_id)))


@bp.post("/<schedule_id>/run")
@requires(ADMIN)
@describe("Make the schedule's job now (outside its slots)", ok="JOB_STATUS",
          status=201, tag="schedules")
def run(schedule_id):
    return jsonify(schedules.run_now(backend(), _sid(schedule_id))), 201
