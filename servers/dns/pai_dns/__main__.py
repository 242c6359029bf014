from pai_dns.spec import main

main()
