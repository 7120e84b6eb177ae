"""LongProc travel_planning (princeton-pli/LongProc @78e873a `longproc/travel_planning_evaluator.py`,
`longproc_data.py::eval_travel_planning`).

- The gold procedure is the verbalised depth-first search over city orders (`build_travel_plan_demonstration`):
  fixed-schedule cities first by arrival day, free cities tried in order, direct-flight and next-fixed-schedule
  checks, ending with the <Plan> in the "**Day a-b:** ..." format.
- accuracy: the <Plan> text is parsed as Natural Plan does (`_parse_response`: "a-b" day ranges, "Day d ... from X
  to Y" flights with one-word city names, stop at the last day) into (city, stay) pairs, which must match the gold
  cities and durations ("**"-separated) in order, all of them.
- partial_accuracy (when accuracy is not 1): from "<Solving Procedure>", non-empty lines are compared in order
  after normalisation (lowercase, punctuation and articles dropped); a gold line contained in the predicted line
  matches; the score is the index of the first mismatch (or of the last compared line) over the gold line count.
- extraction_rate: 1 when a <Plan>...</Plan> block exists.

Deliberate difference: at @78e873a `eval_travel_planning` reads `example["item"]`, a key its own loader does not
create (KeyError on every example); lcjax passes the data item's fields in the reference instead
({"ground_truth_cities", "ground_truth_durations", "reference_output"}).
"""

from __future__ import annotations

import re
import string

from lcjax.eval.metrics.base import register
from lcjax.eval.metrics.longproc import _scored, extract_with_tag, longproc_aggregate

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_INIT_CITY = "the starting point"


def _indent(level: int) -> str:
  return "" if level == 0 else " " * level + "|- "


def _names(items) -> str:
  return "[" + ", ".join(str(x) for x in items) + "]"


def _dfs(day: int, num_cities: int, schedule: list, free: list, fixed: list, connections: set, log: list):
  """`_verbalized_dfs_search`: appends the official log lines; returns the complete schedule or None."""
  depth = len(schedule) * 2
  log.append(f"{_indent(depth)}Current day: {day}. Current plan: {_names(x['city'] for x in schedule)}.")
  if len(schedule) == num_cities:
    log.append(f"{_indent(depth)}All {num_cities} cities are arranged. Complete plan is found!")
    return schedule
  log.append(f"{_indent(depth)}Check whether the city with an arrival day of Day {day} - is fixed.")
  fixed_now = next((c for c in fixed if c["start_day"] == day), None)
  if fixed_now is not None:
    log.append(f"{_indent(depth)}Yes. The city with an arrival day of Day {day} - is fixed: {fixed_now['city']}.")
    choices = [{"city": fixed_now["city"], "num_days": fixed_now["end_day"] - fixed_now["start_day"] + 1,
                "start_day": fixed_now["start_day"], "end_day": fixed_now["end_day"]}]
  else:
    log.append(f"{_indent(depth)}No. Consider possible options from cities needing arrangement: "
               f"{_names(x['city'] for x in free)} and explore these options in order.")
    choices = [{"city": c["city"], "num_days": c["num_days"], "start_day": day, "end_day": day + c["num_days"] - 1}
               for c in free]
  last = _INIT_CITY if not schedule else schedule[-1]["city"]
  following = next((c for c in fixed if c["start_day"] > day), None)
  ind = _indent(depth + 1)
  for ch in choices:
    city, end = ch["city"], ch["end_day"]
    log.append(f"{ind}Try arranging to visit {city} from Day {day}. Duration: {ch['num_days']} days. "
               f"Schedule: Day {day} - {day + ch['num_days'] - 1}.")
    log.append(f"{ind}Check for direct flight from {last} to {city}.")
    if not (last == _INIT_CITY or (last, city) in connections):
      log.append(f"{ind}No. Drop this branch.")
      continue
    log.append(f"{ind}Yes.")
    nxt = "None" if following is None else (f"{following['city']} (Day {following['start_day']} - "
                                            f"{following['end_day']})")
    log.append(f"{ind}Check whether this arrangement is compatible with the next fixed schedule after Day {day}: "
               f"{nxt}.")
    if following is None:
      log.append(f"{ind}No following fixed schedules. This arrangement is compatible.")
    elif following["start_day"] == ch["start_day"]:
      raise ValueError(f"invalid fixed schedule: {following}")
    else:
      later = following["start_day"] < end
      log.append(f"{ind}The departure day of {city} is Day {end}. The arrival day of {following['city']} is Day "
                 f"{following['start_day']}. Day {end} is "
                 + (f"later than (>) Day {following['start_day']}. This arrangement is incompatible. Drop this branch."
                    if later else f"not later than (<=) Day {following['start_day']}. This arrangement is compatible."))
      if later:
        continue
    log.append(f"{ind}This arrangement is feasible for now. Continue to arrange the rest of the plan.")
    found = _dfs(end, num_cities, schedule + [ch], [x for x in free if x["city"] != city], fixed, connections, log)
    if found is not None:
      return found
  log.append(f"{ind}Fail to arrange any option on day {day} in the current arrangement. Drop this branch.")
  return None


def format_plan(schedule: list) -> str:
  """`format_result_plan`: "**Day a-b:** ..." stay lines with "**Day b:** Fly from X to Y." between them."""
  lines = []
  for i, stop in enumerate(schedule):
    city, start, end, days = stop["city"], stop["start_day"], stop["end_day"], stop["num_days"]
    lines.append(f"**Day {start}-{end}:** " + (f"Arriving in {city} and visit {city} for {days} days." if i == 0
                                               else f"Visit {city} for {days} days."))
    if i + 1 < len(schedule):
      lines.append(f"**Day {end}:** Fly from {city} to {schedule[i + 1]['city']}.")
  return "\n".join(lines)


def build_travel_plan_demonstration(item: dict) -> str:
  """The gold "<Solving Procedure>...</Solving Procedure> ... <Plan>...</Plan>" text of a travel_planning item
  ({"num_cities", "constraints", "connected_cities", ...})."""
  constraints = item["constraints"]
  fixed = [c for c in constraints if c["type"] == "fixed"]
  fixed_names = [c["city"] for c in fixed]
  free = [c for c in constraints if c["type"] == "duration" and c["city"] not in fixed_names]
  log = ["Read the requirements and identify the cities that have fixed schedules and the cities that need to be "
         "arranged."]
  for i, c in enumerate(constraints):
    if c["type"] == "fixed":
      continue
    if c["city"] in fixed_names:
      f = constraints[i + 1]
      log.append(f"* City: {c['city']}, Duration: {c['num_days']} days, Fixed Schedule: Day {f['start_day']} - "
                 f"{f['end_day']}.")
    else:
      log.append(f"* City: {c['city']}, Duration: {c['num_days']} days.")
  log.append("")
  if fixed:
    fixed = sorted(fixed, key=lambda x: x["start_day"])
    log.append("Cities that have fixed schedules (sorted by their arrival days):")
    log += [f"* City: {c['city']}, Fixed Schedule: Day {c['start_day']} - {c['end_day']}." for c in fixed]
  else:
    log.append("Cities that have fixed schedules: None.")
  log.append("")
  if free:
    log.append("Cities needing arrangement:")
    log += [f"* City: {c['city']}, Duration: {c['num_days']} days." for c in free]
  else:
    log.append("Cities needing arrangement: None.")
  log.append("")
  connections = {tuple(x) for x in item["connected_cities"]}
  schedule = _dfs(1, item["num_cities"], [], free, fixed, connections, log)
  if schedule is None:
    raise ValueError(f"travel_planning item {item.get('id')!r} has no feasible plan")
  search = "\n".join(log)
  return (f"<Solving Procedure>\n{search}\n</Solving Procedure>\n\nOutput the plan in the required format:\n"
          f"<Plan>\n{format_plan(schedule)}\n</Plan>")


def parse_plan(response: str) -> list[tuple[str, int]]:
  """Natural Plan's `_parse_response`: [(city, stay days)] from day ranges and "Day d ... from X to Y" flights."""
  days, flights = [], []
  total_days = None
  for piece in response.split("\n"):
    found = re.findall(r"European cities for (\d+) days", piece)
    if found:
      total_days = int(found[0])
    visit = re.findall(r"\d+-\d+", piece)
    if visit:
      days.append(visit[0])
      if int(visit[0].split("-")[1]) == total_days:
        break
    flight = re.findall(r".*Day (\d+).*from (\w+) to (\w+)", piece)
    if flight:
      flights.append(flight[0])
  cities, flight_days = [], []
  for day, begin, end in flights:
    flight_days.append(int(day))
    cities += [begin, end] if not cities else [end]
  if not days or not flights or not cities:
    return []
  flight_days = [1] + flight_days + [int(days[-1].split("-")[1])]
  return [(city, flight_days[i + 1] - flight_days[i] + 1) for i, city in enumerate(cities)]


def evaluate_travel_plan_solution(cities: str, durations: str, response: str) -> float:
  """1.0 if every gold (city, days) stay ("**"-separated strings) is matched in order by the parsed plan."""
  stays = [x for x in cities.split("**") if x]
  days = [int(x) for x in durations.split("**") if x]
  plan = parse_plan(response)
  matched = 0
  for i in range(min(len(stays), len(plan))):
    if stays[i] != plan[i][0] or days[i] != plan[i][1]:
      break
    matched += 1
  return 0.0 if matched / len(stays) < 1.0 else 1.0


def _normalize_line(line: str) -> str:
  line = "".join(ch for ch in line.lower() if ch not in string.punctuation)
  return " ".join(_ARTICLES.sub(" ", line).split())


def evaluate_travel_plan_search_procedure(output: str, gt_procedure: str) -> float:
  """Share of gold procedure lines before the first gold line not contained in the predicted line."""
  marker, fmt = "<Solving Procedure>", "Output the plan in the required format:"
  gt_procedure = marker + gt_procedure.replace(fmt, "").split(marker)[1]
  output = output.replace(fmt, "")
  if marker in output:
    output = marker + output.split(marker)[1]
  pred_lines = [x.rstrip() for x in output.strip().split("\n") if x.strip()]
  gt_lines = [x.rstrip() for x in gt_procedure.strip().split("\n") if x.strip()]
  idx = -1
  for pred, gold in zip(pred_lines, gt_lines):
    idx += 1
    if _normalize_line(gold) not in _normalize_line(pred):
      break
  return max(idx, 0) / len(gt_lines)


def eval_travel_planning(prediction: str, reference: dict) -> dict:
  """reference: {"ground_truth_cities", "ground_truth_durations", "reference_output"} (see module docstring)."""
  plan = extract_with_tag(prediction, "Plan")
  accuracy = 0.0 if plan is None else evaluate_travel_plan_solution(
      reference["ground_truth_cities"], reference["ground_truth_durations"], plan.strip())
  partial = 1.0 if accuracy == 1.0 else evaluate_travel_plan_search_procedure(prediction,
                                                                              reference["reference_output"])
  return {"accuracy": accuracy, "partial_accuracy": partial, "extraction_rate": 0.0 if plan is None else 1.0}


register("longproc.travel_planning", _scored(eval_travel_planning, "accuracy"), aggregate=longproc_aggregate)
