from pai_gitlab.spec import main

main()
