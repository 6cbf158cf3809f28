-- Tells the patient-access service that a study is stable, so that it records
-- the study and creates the patient's login. Only the study's Orthanc ID is
-- sent: the service reads everything else from Orthanc's REST API itself.
-- A notification that fails is not retried here: the service also follows
-- Orthanc's /changes and catches up on StableStudy events it missed.
--
-- Settings: the "PatientAccess" section of Orthanc's configuration
-- (ServiceUrl, Secret). All LuaScripts share one global context: everything
-- but the callback is local.

local settings = GetOrthancConfiguration()["PatientAccess"] or {}
local serviceUrl = settings["ServiceUrl"]
local secret = settings["Secret"]

function OnStableStudy(studyId, tags, metadata)
  if serviceUrl == nil or secret == nil then
    print("patient-access: PatientAccess.ServiceUrl/Secret not configured; study "
          .. studyId .. " left to the service's catch-up")
    return
  end
  -- Headers must be a non-empty table: {} would be sent as a JSON array and
  -- make every call fail.
  local answer = HttpPost(serviceUrl .. "/internal/stable-study",
                          DumpJson({ id = studyId }, true),
                          { ["Content-Type"] = "application/json",
                            ["X-Authsvc-Secret"] = secret })
  if answer == nil then
    print("patient-access: the service did not take stable study " .. studyId
          .. "; it will catch up from /changes")
  end
end
